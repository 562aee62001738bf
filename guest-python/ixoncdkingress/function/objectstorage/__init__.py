"""Object storage types of ixoncdkingress (what authorisation functions return)."""
