# expect: SpecError line=6 node=c message="nodes b and c both have index 1"
graph [
  directed 1
  node [ id 0 label "a" index 0 ]
  node [ id 1 label "b" index 1 ]
  node [ id 2 label "c" index 1 ]
  edge [ source 0 target 1 ]
  edge [ source 0 target 2 ]
]
