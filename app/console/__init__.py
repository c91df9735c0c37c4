"""``accord console``: the web console a partner runs for its people (issue 16).

Server-rendered (Starlette, Jinja2, htmx), it talks to the broker with the
partner's certificate through ``accord.client`` and sends the signed-in
person as the end user of every call. It keeps no offender data: each page
asks the broker again, and every response is ``Cache-Control: no-store``.
"""
