// A small kindnetd (standard library only) for the kind node image: routes to the other nodes' pod CIDRs and the CNI config.
module celers-kube-lease/hack/kind/kindnetd

go 1.26.0
