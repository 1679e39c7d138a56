"""One syntax for every option string of the analysis: ``name:key=value,key=value``.

Used by the features (``distances:selection=name CA``), the reduction (``tica:lag=10,dim=2``), the clustering
(``kmeans:k=50``) and the MSM (``lag=10,n_sets=3``; the name may be left out). Options are separated by ``,``
(``;`` is read the same way, as older feature specs wrote it); a list value joins its items with ``+``
(``lags=1+2+5+10``). Values become ``int``, ``float``, ``True``/``False``, ``None`` (``none``) or stay text.
"""

__all__ = ["parse_spec", "parse_value"]


def parse_value(text):
    """One option value: ``"10"`` -> 10, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None,
    ``"1+2+5"`` -> [1, 2, 5]; anything else stays a string.

    Examples
    --------
    >>> parse_value("1+2+5"), parse_value("0.45"), parse_value("name CA"), parse_value("None")
    ([1, 2, 5], 0.45, 'name CA', None)

    Parameters
    ----------
    text : str

    Returns
    -------
    int, float, bool, None, str or list
    """
    text = str(text).strip()
    if "+" in text and not text.startswith("+") and "e+" not in text.lower():
        return [parse_value(part) for part in text.split("+") if part.strip()]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec, what="option"):
    """Split ``"name:key=value,key=value"`` into the name and its options.

    Parameters
    ----------
    spec : str or None
        A bare ``"key=value,..."`` has no name (None); a bare ``"name"`` has no options.
    what : str
        Names the kind of spec in error messages (``feature``, ``reduce``, ``cluster``, ``msm``).

    Returns
    -------
    tuple
        ``(name in lower case or None, dict of options)``.

    Raises
    ------
    ValueError
        For an option that is not ``key=value``.

    Examples
    --------
    >>> parse_spec("tica:lag=10,dim=2", "reduce")
    ('tica', {'lag': 10, 'dim': 2})
    >>> parse_spec("lag=5,lags=1+2+5", "msm")
    (None, {'lag': 5, 'lags': [1, 2, 5]})
    >>> parse_spec("torsions:kinds=phi,psi", "feature")
    ('torsions', {'kinds': ['phi', 'psi']})
    >>> parse_spec("residue_distances:scheme=ca;exclude_neighbors=10", "feature")
    ('residue_distances', {'scheme': 'ca', 'exclude_neighbors': 10})
    """
    if spec is None:
        return None, {}
    spec = str(spec).strip()
    name, sep, rest = spec.partition(":")
    if not sep and "=" in name:
        name, rest = None, spec
    options, key = {}, None
    for item in filter(None, (part.strip() for part in rest.replace(";", ",").split(","))):
        if "=" not in item and key is not None:  # "kinds=phi,psi": a list written with commas
            value = options[key]
            options[key] = (value if isinstance(value, list) else [value]) + [parse_value(item)]
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ValueError(f"{what} option {item!r} in {spec!r} is not key=value (options are "
                             "name:key=value,key=value; list values join items with +)")
        options[key] = parse_value(value)
    return (name.strip().lower() if name else None), options
