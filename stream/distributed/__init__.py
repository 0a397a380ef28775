"""Past one machine: a site's cameras in shards on a Ray cluster, and recorded video as Ray tasks.

Each shard is a whole `facestream run` for its cameras, inside one Ray actor on some node: its
frames stay in that node's shared memory, only events (a few hundred bytes each) cross the network,
to the driver's event proxy, where every subscriber, MQTT and the web view connect.
"""
