# expect: SpecError line=6 node=c edge=b->c message="the edge b -> c goes against the index attributes (b has index 2, c has 1)"
graph [
  directed 1
  node [ id 0 label "a" index 0 ]
  node [ id 1 label "b" index 2 ]
  node [ id 2 label "c" index 1 ]
  edge [ source 0 target 1 ]
  edge [ source 1 target 2 ]
]
