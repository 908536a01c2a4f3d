module weft/bench/peers/servers/go

go 1.19
