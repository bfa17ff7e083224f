"""The Gradio studio: one tab per module, each a Blocks section that also runs on its own."""
import gradio.exceptions


def _user_errors_print_no_traceback() -> None:
    """A gr.Error is the user's mistake (a bad trim, nothing chosen), shown in the page; Gradio also
    prints its traceback in the server's terminal unless each raise says print_exception=False.
    Make that the default once, here, for every tab (a real fault is not a gr.Error and still prints)."""
    init = gradio.exceptions.Error.__init__
    names = init.__code__.co_varnames[1:init.__code__.co_argcount]
    defaults = list(init.__defaults__)
    defaults[names.index("print_exception") - (len(names) - len(defaults))] = False
    init.__defaults__ = tuple(defaults)


_user_errors_print_no_traceback()
