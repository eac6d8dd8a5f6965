# expect: SpecError line=4 message="nested more than 64 levels deep"
# networkx parses GML recursively: 50,000 levels were a RecursionError.
graph [ directed 1
  node [ id 0 label "a" x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ x [ ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] ]
]
