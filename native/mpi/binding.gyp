{
  "variables": {
    "mpi_cflags%": "<!(mpicc --showme:compile 2>/dev/null || echo)",
    "mpi_libs%": "<!(mpicc --showme:link 2>/dev/null || echo -lmpi)"
  },
  "targets": [
    {
      "target_name": "tfjs_attention_mpi",
      "sources": ["mpi_binding.cc", "mpi_wait.cc"],
      "defines": ["OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O2", "-std=c++17", "<@(mpi_cflags)"],
      "libraries": ["<@(mpi_libs)", "-ldl"],
      "ldflags": ["-pthread"]
    }
  ]
}
