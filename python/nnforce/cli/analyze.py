"""``nnforce analyze``: featurize trajectories, reduce, cluster, build an MSM, write plots and an HTML report."""
from . import add_command

EXAMPLES = """examples:
  nnforce analyze traj.dcd --top ala2.pdb
      phi/psi features, TICA (lag 10), k-means (50), MSM (lag 10) -> analysis/analysis.html
  nnforce analyze run1.xtc run2.xtc --top system.pdb --features phi_psi chi "distances:selection=name CA" \\
      --reduce tica:lag=10,dim=3 --cluster kmeans:k=100 --msm lag=10,n_sets=3 --stride 2 -o out/
  nnforce analyze traj.dcd --top ala2.pdb --reduce none --cluster regspace:dmin=0.6 --msm lag=5,lags=1+2+5+10
  nnforce analyze *.xtc --top system.gro --features "contacts:cutoff_nm=0.5" --reduce pca:dim=2 --msm none
  nnforce analyze *.dcd --top system.pdb --dask local --workers 4      (parallel featurization, one task per file)
  nnforce analyze *.dcd --top system.pdb --dask tcp://scheduler:8786   (an existing Dask cluster)

every spec is NAME:key=value,key=value (see docs/analysis.md; ';' is still read as a separator, '+' joins a list)
features: phi_psi, backbone_torsions, chi, torsions:kinds=phi+psi+chi1, distances:selection=name CA,
  residue_distances:scheme=ca, contacts:cutoff_nm=0.45, angles, rmsd[:reference=ref.pdb,selection=backbone],
  dssp, xyz:selection=name CA
reduce: tica:lag=N[,dim=D|var_cutoff=0.95][,scaling=kinetic_map|commute_map|none], pca[:dim=D], none
cluster: kmeans:k=N, minibatch:k=N, kcenters:k=N, regspace:dmin=X, hdbscan:min_cluster_size=N, none
msm: lag=N[,n_sets=M][,lags=1+2+5+10][,mlags=4], none   (lags in strided frames)"""


def register(subparsers):
    """Add ``nnforce analyze`` to ``subparsers``."""
    parser = add_command(subparsers, "analyze", "featurize, reduce (TICA/PCA), cluster, MSM; plots + HTML report",
                         "Trajectory analysis: mdtraj featurization streamed chunk by chunk, PCA/TICA, clustering, "
                         "Markov state models, free-energy plots and a self-contained HTML report.", EXAMPLES)
    parser.add_argument("trajectories", nargs="+", metavar="TRAJ", help="trajectory files (dcd, xtc, nc, h5, ...)")
    parser.add_argument("--top", required=True,
                        help="topology/structure file matching the trajectories (pdb, gro, prmtop, psf)")
    parser.add_argument("--features", nargs="+", default=["phi_psi"], metavar="SPEC",
                        help="feature specs (default phi_psi)")
    parser.add_argument("--reduce", default="tica:lag=10,dim=2", help="tica:lag=N,dim=D | pca:dim=D | none")
    parser.add_argument("--cluster", default="kmeans:k=50",
                        help="kmeans:k=N | minibatch:k=N | kcenters:k=N | regspace:dmin=X | hdbscan:... | none")
    parser.add_argument("--msm", default="lag=10,n_sets=3", help="lag=N[,n_sets=M][,lags=a+b+c] | none")
    parser.add_argument("-o", "--out", default="analysis", help="output folder (default ./analysis)")
    parser.add_argument("--stride", type=int, default=1, help="use every STRIDE-th frame")
    parser.add_argument("--chunk", type=int, default=10000, help="frames read per chunk (memory bound)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K, for -kT ln p (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for clustering and structure sampling")
    parser.add_argument("--samples", type=int, default=5, help="structures sampled per cluster/state")
    parser.add_argument("--dt-ps", type=float, default=None,
                        help="time between saved frames (read from the file if omitted)")
    parser.add_argument("--dask", default=None, metavar="SCHEDULER",
                        help="featurize with Dask: 'local' (a local cluster) or a scheduler address")
    parser.add_argument("--workers", type=int, default=None, help="local Dask workers (default: CPU count)")
    parser.set_defaults(func=run)


def run(args):
    """Run ``nnforce analyze`` with parsed ``args``; returns 0."""
    from ..analysis.pipeline import analyze

    result = analyze(args.trajectories, args.top, args.out, features=args.features, reduce=args.reduce,
                     cluster=args.cluster, msm=args.msm, stride=args.stride, chunk=args.chunk,
                     temperature_k=args.temperature, seed=args.seed, n_samples=args.samples, scheduler=args.dask,
                     n_workers=args.workers, dt_ps=args.dt_ps, progress=True)
    for key, value in result["numbers"].items():
        print(f"{key}: {value}")
    print(f"report: {result['files']['html']}")
    return 0
