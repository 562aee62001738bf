"""A function with keyword arguments and configuration values."""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def greet(context: FunctionContext, name: str = "World", punctuation: str = "!"):
    """Greets `name` with the configured greeting."""
    greeting = context.config.get("greeting", "Hello")
    return {"message": f"{greeting}, {name}{punctuation}"}


@FunctionContext.expose(is_agentic=True, description="Counts the letters of a name.")
def count_letters(context: FunctionContext, name: str):
    return {"name": name, "letters": sum(c.isalpha() for c in name)}


def not_exposed(context: FunctionContext):
    return "callers can never reach this"
