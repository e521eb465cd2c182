"""goto"""
