"""`icgen serve`: the web page and its JSON API, a shell over the same stage functions as the CLI.

    icgen serve --port 8000        # then open http://127.0.0.1:8000/

`config` (ServeConfig, the only source of the server's defaults) is light; `app` (FastAPI), `jobs` (the bounded
job queue), `store` (the results folder), `runner` (one sizing job) and `svg` (the Bode plot) sit under it.
Nothing below the shell imports this package.
"""
