"""The REST front end: the route table, the RSGI app and its granian server."""
