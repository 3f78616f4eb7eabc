"""The daemon's side of the wire: the control server (commands on a ROUTER,
events on an XPUB), the commands it runs, the wire format (protocol) and
where it binds (endpoints). Clients are in bigtop.client, which may use
protocol and endpoints; nothing here imports the client."""
