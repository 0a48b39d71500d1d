// Wrapper module that builds the CNI loopback plugin (hack/node.sh's pod
// network) from the upstream containernetworking/plugins module.
module celers-kube-lease/hack/upstream/cni-plugins

go 1.26.0

require github.com/containernetworking/plugins v1.9.1 // indirect
