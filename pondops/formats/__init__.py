"""PondOps' date and time formats (``FORMAT_MODULE_PATH``): the console's one format with
seconds, also where Django's own admin pages (history, users, tasks) show a time."""
