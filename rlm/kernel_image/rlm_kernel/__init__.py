"""rlm's kernel: an IPython kernel preloaded with CONTEXT, llm_query and FINAL.

Runs inside the sandbox. Depends only on the standard library, ipykernel, pyzmq and
jupyter_client; never on the host-side `rlm` package.
"""
