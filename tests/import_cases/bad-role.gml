# expect: SpecError line=none edge=a->b message="role must be one of input, edge, input+edge, not 'edges' (did you mean 'edge'?)"
graph [
  directed 1
  node [ id 0 label "a" ]
  node [ id 1 label "b" ]
  edge [ source 0 target 1 role "edges" ]
]
