"""flows.ideas"""
