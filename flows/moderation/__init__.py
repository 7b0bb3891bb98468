"""flows.moderation"""
