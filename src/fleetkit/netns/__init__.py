"""fleetkit.netns"""
