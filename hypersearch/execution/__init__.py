"""Running trials: in process, in child processes; leases that keep them owned."""
