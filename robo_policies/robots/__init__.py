"""ROS-free robot drivers: the Robot interface, motor buses, safety chain and base kinematics."""
