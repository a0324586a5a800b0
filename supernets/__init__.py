"""OFA supernets: building them, training them from scratch, scoring their subnets, loading and saving weights."""
