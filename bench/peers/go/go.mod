module weft/bench/peers/go

go 1.19

// errgroup (group_fanout), built offline from Debian's golang-golang-x-sync-dev: the
// directory replacement needs no download and no go.sum entry.
require golang.org/x/sync v0.1.0

replace golang.org/x/sync => /usr/share/gocode/src/golang.org/x/sync
