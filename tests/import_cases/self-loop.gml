# expect: CycleError line=5 node=b cycle=b message="the graph has a cycle: b -> b"
graph [
  directed 1
  node [ id 0 label "a" ]
  node [ id 1 label "b" ]
  edge [ source 0 target 1 ]
  edge [ source 1 target 1 ]
]
