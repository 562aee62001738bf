"""{{name}}: an IXON-style cloud function.

Every call runs in a fresh, isolated instance. Try it:

    wasmfn dev .      # or: wasmfn serve .
    curl 'http://127.0.0.1:8080/spaces/default/functions/{{name}}/invoke?name=Ada'
"""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def hello(context: FunctionContext, name: str = "World", **kwargs):
    """Greets `name`, given as a query parameter or a field of a JSON body."""
    greeting = context.config.get("greeting", "Hello")
    print(f"greeting {name}")
    return {"message": f"{greeting}, {name}!"}
