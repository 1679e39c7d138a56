"""Model files before torch reads them: built-in models known by name, and the archive check (zip structure, CRCs,
size limits): :func:`verified_force` builds the model's ``NNForce`` once, whose C++ constructor is the one check on
the way to the kernel (:func:`nnforce.contract.inspect_model` keeps it for :func:`nnforce.force.build_nnforce`);
:func:`check_model_archive` is the check alone (re-exported from ``nnforce.contract``)."""
import io

__all__ = ["BUILTIN_MODELS", "builtin_model_bytes", "check_model_archive", "verified_force"]


# Models known by name (when no file of that name exists): name -> (description, builder of the eager module).
BUILTIN_MODELS = {"ani1x": "ANI-1x (Smith et al. 2018), H C N O, 8-network ensemble, from the torchani 2.1.1 files"}


def builtin_model_bytes(name):
    """The TorchScript bytes of a built-in model (see :data:`BUILTIN_MODELS`).

    Parameters
    ----------
    name : str
        ``"ani1x"``.

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        For an unknown name.
    FileNotFoundError
        When the model's parameter files are not installed (the message says how to get them).

    Examples
    --------
    >>> builtin_model_bytes("ani1x")[:2]  # doctest: +SKIP
    b'PK'
    """
    import torch

    if name != "ani1x":
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(sorted(BUILTIN_MODELS))}")
    from .models.ani1x import ani1x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(ani1x()), buffer)
    return buffer.getvalue()


def check_model_archive(data, name):
    """Verify a model archive before torch reads it: the zip structure, every entry's CRC-32 and the size limits
    (the plugin's own check, :func:`nnforce.plugin.checkModelArchive`).

    Parameters
    ----------
    data : bytes
        The model file's bytes.
    name : str
        How to name the model in messages.

    Raises
    ------
    ValueError
        Naming the damaged entry or the exceeded limit (and the environment variable that raises it).

    Examples
    --------
    >>> check_model_archive(b"PK\\x03\\x04 cut short", "model.pt")  # doctest: +SKIP
    Traceback (most recent call last):
    ValueError: NNForce: 'model.pt' is not a valid model archive: it has no zip end record ...
    """
    try:
        from . import plugin
    except ImportError:  # a source tree without the compiled plugin: torch's own reader is all there is
        return
    import openmm

    try:
        plugin.checkModelArchive(data, name)
    except openmm.OpenMMException as error:
        raise ValueError(str(error).replace("NNForce: ", "", 1)) from None


def verified_force(data, name):
    """The ``NNForce`` of a model's bytes, built once: its C++ constructor is the one verification of the archive
    (zip structure, CRC-32s, size limits; ``verifyModelArchive``) and tells the format from the entries.

    Parameters
    ----------
    data : bytes
        The model file's bytes.
    name : str
        How to name the model in messages.

    Returns
    -------
    nnforce.NNForce or None
        None where the plugin is not built, or where the archive is sound but not a format NNForce runs (the
        caller then says what the file is, as before: a torch.save pickle, ...).

    Raises
    ------
    ValueError
        A damaged archive or an exceeded limit, named as :func:`check_model_archive` names them.

    Examples
    --------
    >>> force = verified_force(open("model.pt", "rb").read(), "'model.pt'")  # doctest: +SKIP
    >>> force.getModelFormat()  # doctest: +SKIP
    'torchscript'
    """
    try:
        from . import plugin
    except ImportError:  # a source tree without the compiled plugin: torch's own reader is all there is
        return None
    import openmm

    try:
        return plugin.NNForce(data)
    except openmm.OpenMMException:
        # only on the way out: the archive check again, with the model's own name in the message; a sound archive
        # in a format NNForce does not run gets None and the caller's message
        check_model_archive(data, name)
        return None
