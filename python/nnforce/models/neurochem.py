"""Reader for NeuroChem model files (the format the published ANI networks are distributed in).

A NeuroChem ensemble directory holds

* ``<name>.params`` -- the atomic-environment-vector (AEV) constants, one ``key = value`` per line, where
  a value is a number or a bracketed list (``EtaR = [1.6e+01]``, ``Atyp = [H,C,N,O]``); lengths in Angstrom;
* ``sae_linfit.dat`` -- self (atomic reference) energies in Hartree, one ``Symbol,index=value`` per line;
* ``train<k>/networks/ANN-<Symbol>.nnf`` -- one network per element and ensemble member: a short text
  header ``<length>=`` followed by a bzip2-compressed description of the layers (``layer [ key=value; ... ]``
  blocks giving ``nodes``, ``activation``, ``blocksize`` and the ``weights=FILE:name[count]`` /
  ``biases=FILE:name[count]`` files beside it);
* the weight/bias files named there: raw little-endian float32, weights stored output-major, that is as a
  row-major ``[nodes, blocksize]`` matrix (the orientation ``torch.nn.Linear`` uses).

Everything here is plain Python + numpy and returns numpy arrays; :mod:`nnforce.models.ani1x` turns them
into a TorchScript module. Unknown activation codes raise ``ValueError`` instead of guessing.
"""
import bz2
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

# NeuroChem activation codes we know how to evaluate (others are rejected with a clear error)
ACTIVATION_IDENTITY = 6
ACTIVATION_CELU = 9  # CELU with alpha = 0.1
KNOWN_ACTIVATIONS = {ACTIVATION_IDENTITY: "identity", ACTIVATION_CELU: "celu(alpha=0.1)"}

_AEV_KEYS = ("Rcr", "Rca", "EtaR", "ShfR", "Zeta", "ShfZ", "EtaA", "ShfA", "Atyp")


@dataclass
class AEVParameters:
    """Constants of the ANI atomic environment vector, lengths in Angstrom (as stored by NeuroChem)."""

    radial_cutoff: float        # Rcr
    angular_cutoff: float       # Rca
    radial_eta: List[float]     # EtaR
    radial_shifts: List[float]  # ShfR
    zeta: List[float]           # Zeta
    angle_shifts: List[float]   # ShfZ (radians)
    angular_eta: List[float]    # EtaA
    angular_shifts: List[float]  # ShfA
    symbols: List[str]          # Atyp, the element order of the AEV channels and of the networks


@dataclass
class Layer:
    weight: np.ndarray  # [nodes, inputs] float32
    bias: np.ndarray    # [nodes] float32
    activation: int     # NeuroChem activation code


@dataclass
class Network:
    symbol: str
    input_size: int
    layers: List[Layer] = field(default_factory=list)


def _parse_value(text):
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        items = [item.strip() for item in text[1:-1].split(",") if item.strip()]
        try:
            return [float(item) for item in items]
        except ValueError:
            return items
    try:
        return float(text)
    except ValueError:
        return text


def read_params(path) -> AEVParameters:
    """Parse a NeuroChem ``.params`` AEV constants file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NeuroChem AEV parameter file not found: {path}")
    values: Dict[str, object] = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.split("!")[0].strip()
            if not line:
                continue
            if "=" not in line:
                raise ValueError(f"{path}:{number}: expected 'key = value', got {line!r}")
            key, value = line.split("=", 1)
            values[key.strip()] = _parse_value(value)
    missing = [key for key in _AEV_KEYS if key not in values]
    if missing:
        raise ValueError(f"{path}: not a NeuroChem AEV parameter file, missing {', '.join(missing)}")

    def as_list(key):
        value = values[key]
        return [float(v) for v in (value if isinstance(value, list) else [value])]

    symbols = values["Atyp"]
    if not isinstance(symbols, list):
        symbols = [str(symbols)]
    return AEVParameters(
        radial_cutoff=float(values["Rcr"]), angular_cutoff=float(values["Rca"]),
        radial_eta=as_list("EtaR"), radial_shifts=as_list("ShfR"), zeta=as_list("Zeta"),
        angle_shifts=as_list("ShfZ"), angular_eta=as_list("EtaA"), angular_shifts=as_list("ShfA"),
        symbols=[str(s) for s in symbols])


def read_self_energies(path) -> Dict[str, float]:
    """Parse ``sae_linfit.dat``: ``{symbol: self energy in Hartree}``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NeuroChem self-energy file not found: {path}")
    energies = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            match = re.fullmatch(r"([A-Za-z]+)\s*,\s*\d+\s*=\s*(\S+)", line)
            if match is None:
                raise ValueError(f"{path}:{number}: expected 'Symbol,index=energy', got {line!r}")
            energies[match.group(1)] = float(match.group(2))
    return energies


def _network_text(path):
    with open(path, "rb") as handle:
        raw = handle.read()
    equals = raw.find(b"=")
    if equals > 0 and raw[:equals].strip().isdigit():
        payload = raw[equals + 1:].lstrip(b"\r\n")
        if payload.startswith(b"BZh"):
            return bz2.decompress(payload).decode("ascii")
    return raw.decode("ascii")  # an uncompressed description


def _read_floats(path, count):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NeuroChem parameter file not found: {path}")
    data = np.fromfile(path, dtype="<f4")
    if data.size != count:
        raise ValueError(f"{path}: expected {count} float32 values, found {data.size}")
    return data


def read_network(path) -> Network:
    """Parse one ``ANN-<Symbol>.nnf`` network and load its weight and bias files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NeuroChem network file not found: {path}")
    directory = os.path.dirname(path)
    text = _network_text(path)
    size = re.search(r"inputsize\s*=\s*(\d+)", text)
    symbol = re.search(r"atom_net\s+(\S+)", text)
    if size is None or symbol is None:
        raise ValueError(f"{path}: not a NeuroChem network description (no inputsize / atom_net)")
    network = Network(symbol=symbol.group(1), input_size=int(size.group(1)))
    inputs = network.input_size
    for block in re.findall(r"layer\s*\[(.*?)^\s*\]\s*$", text, flags=re.S | re.M):
        fields = dict(
            (key.strip(), value.strip())
            for key, value in (item.split("=", 1) for item in block.split(";") if "=" in item))
        nodes = int(fields["nodes"])
        activation = int(fields["activation"])
        if activation not in KNOWN_ACTIVATIONS:
            raise ValueError(f"{path}: unsupported NeuroChem activation code {activation} "
                             f"(known: {KNOWN_ACTIVATIONS})")
        if int(fields.get("blocksize", inputs)) != inputs:
            raise ValueError(f"{path}: layer blocksize {fields['blocksize']} does not match its input size {inputs}")
        if int(fields.get("type", 0)) != 0:
            raise ValueError(f"{path}: only dense layers (type=0) are supported, got type={fields['type']}")

        def parameter_file(key, count):
            match = re.fullmatch(r"FILE:(.+)\[(\d+)\]", fields[key])
            if match is None or int(match.group(2)) != count:
                raise ValueError(f"{path}: bad {key} entry {fields[key]!r} for a {inputs}->{nodes} layer")
            return _read_floats(os.path.join(directory, match.group(1)), count)

        weight = parameter_file("weights", nodes * inputs).reshape(nodes, inputs)
        bias = parameter_file("biases", nodes)
        network.layers.append(Layer(weight=weight, bias=bias, activation=activation))
        inputs = nodes
    if not network.layers:
        raise ValueError(f"{path}: the network has no layers")
    if inputs != 1:
        raise ValueError(f"{path}: the last layer must have one output (the atomic energy), has {inputs}")
    return network


@dataclass
class Ensemble:
    aev: AEVParameters
    self_energies_hartree: Dict[str, float]
    members: List[Dict[str, Network]]  # one {symbol: network} per ensemble member


def read_ensemble(directory, params_name=None, size=None) -> Ensemble:
    """Read a NeuroChem ensemble directory (``sae_linfit.dat`` and ``train0``, ``train1``, ... subdirectories)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"NeuroChem ensemble directory not found: {directory}")
    members = sorted((int(name[5:]), name) for name in os.listdir(directory)
                     if re.fullmatch(r"train\d+", name) and os.path.isdir(os.path.join(directory, name)))
    if not members:
        raise FileNotFoundError(f"{directory}: no train<k>/ member directories (is this a NeuroChem ensemble?)")
    if size is not None:
        if len(members) < size:
            raise ValueError(f"{directory}: expected {size} ensemble members, found {len(members)}")
        members = members[:size]
    first = os.path.join(directory, members[0][1])
    if params_name is None:
        candidates = sorted(name for name in os.listdir(first) if name.endswith(".params"))
        if len(candidates) != 1:
            raise ValueError(f"{first}: expected one .params file, found {candidates}; pass params_name")
        params_name = candidates[0]
    aev = read_params(os.path.join(first, params_name))
    sae_path = os.path.join(directory, "sae_linfit.dat")
    if not os.path.isfile(sae_path):
        sae_path = os.path.join(first, "sae_linfit.dat")
    self_energies = read_self_energies(sae_path)
    missing = [s for s in aev.symbols if s not in self_energies]
    if missing:
        raise ValueError(f"{sae_path}: no self energy for {missing}")
    loaded = []
    for _, name in members:
        nets = {}
        for symbol in aev.symbols:
            net = read_network(os.path.join(directory, name, "networks", f"ANN-{symbol}.nnf"))
            if net.symbol != symbol:
                raise ValueError(f"{directory}/{name}: ANN-{symbol}.nnf describes element {net.symbol}")
            nets[symbol] = net
        loaded.append(nets)
    return Ensemble(aev=aev, self_energies_hartree=self_energies, members=loaded)
