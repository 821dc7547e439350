"""Typed reading of the user's options: the settings of the configs and command lines."""
