"""flows.reports"""
