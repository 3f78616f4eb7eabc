"""bigtop-web: the web console. An aiohttp server that follows one or more
daemons through :mod:`bigtop.client` and serves a page written in
plain JavaScript and CSS, all from this package (no network access at run
time). See docs/web.md."""
