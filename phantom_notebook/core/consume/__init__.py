"""consume"""
