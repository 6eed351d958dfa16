"""The `sessionflow` command line: the top layer, over the stage layer (sessionflow/) and flows/."""
