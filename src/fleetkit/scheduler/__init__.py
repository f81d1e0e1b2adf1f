"""fleetkit.scheduler"""
