"""The 0.0.x path of the object storage types."""
