"""rlm's sandboxed kernel as an ordinary Jupyter kernel: kernelspecs and notebook llm_query."""
