"""fleetkit.registry"""
