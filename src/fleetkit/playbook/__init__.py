"""fleetkit.playbook"""
