# expect: SpecError line=none edge=a->b message="parallel edges a -> b"
graph [
  directed 1
  multigraph 1
  node [ id 0 label "a" ]
  node [ id 1 label "b" ]
  edge [ source 0 target 1 ]
  edge [ source 0 target 1 ]
]
