"""ROS-free robot drivers: the Robot interface, robot kinds by name (registry.py), motor buses,
the safety chain, base kinematics and the fixed-rate loops, all keeping an injectable clock."""
