"""OFA supernets: building them, training them from scratch, loading and saving their weights."""
