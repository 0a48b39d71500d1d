// Command kindnetd is a small stand-in for kind's kindnetd (which is not
// published as a Go module): on its node it writes the CNI config (ptp and
// host-local over the node's pod CIDR, portmap) and routes every other
// node's pod CIDR via that node's InternalIP, then keeps both up to date.
//
// It runs as kind's DaemonSet runs kindnetd (host network, NET_ADMIN), with
// HOST_IP set from status.hostIP, and talks to the API server with the
// pod's service account; `ip` (iproute2) must be on PATH.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

const (
	saDir      = "/var/run/secrets/kubernetes.io/serviceaccount"
	cniConfig  = "/etc/cni/net.d/10-kindnet.conflist"
	resyncTime = 10 * time.Second
)

type nodeList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			PodCIDRs []string `json:"podCIDRs"`
		} `json:"spec"`
		Status struct {
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
		} `json:"status"`
	} `json:"items"`
}

func main() {
	hostIP := os.Getenv("HOST_IP")
	if net.ParseIP(hostIP) == nil {
		log.Fatalf("HOST_IP %q is not an IP address", hostIP)
	}
	client, url, token, err := apiClient()
	if err != nil {
		log.Fatal(err)
	}
	for {
		if err := sync(client, url, token, hostIP); err != nil {
			log.Printf("sync: %v", err)
		}
		time.Sleep(resyncTime)
	}
}

// apiClient: an HTTPS client trusting the cluster's CA, the nodes URL and
// the service account's token.
func apiClient() (*http.Client, string, string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, "", "", errors.New("KUBERNETES_SERVICE_HOST/PORT not set: not running in a pod?")
	}
	ca, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		return nil, "", "", fmt.Errorf("reading the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, "", "", fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		return nil, "", "", fmt.Errorf("reading the service account token: %w", err)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	return client, "https://" + net.JoinHostPort(host, port) + "/api/v1/nodes", string(bytes.TrimSpace(token)), nil
}

func sync(client *http.Client, url, token, hostIP string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("listing nodes: %s", resp.Status)
	}
	var nodes nodeList
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		return fmt.Errorf("decoding the node list: %w", err)
	}
	for _, n := range nodes.Items {
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" && net.ParseIP(a.Address).To4() != nil {
				ip = a.Address
			}
		}
		if ip == "" || len(n.Spec.PodCIDRs) == 0 {
			continue // not ready for routing yet
		}
		if ip == hostIP {
			if err := writeCNIConfig(n.Spec.PodCIDRs[0]); err != nil {
				return err
			}
			continue
		}
		for _, cidr := range n.Spec.PodCIDRs {
			if _, _, err := net.ParseCIDR(cidr); err != nil {
				return fmt.Errorf("node %s: pod CIDR %q: %w", n.Metadata.Name, cidr, err)
			}
			if out, err := exec.Command("ip", "route", "replace", cidr, "via", ip).CombinedOutput(); err != nil {
				return fmt.Errorf("ip route replace %s via %s: %v: %s", cidr, ip, err, out)
			}
		}
	}
	return nil
}

// writeCNIConfig writes the node's CNI config, as kind's kindnetd does,
// when it differs from what is there (atomically: the kubelet may read it
// at any time).
func writeCNIConfig(podCIDR string) error {
	if _, _, err := net.ParseCIDR(podCIDR); err != nil {
		return fmt.Errorf("own pod CIDR %q: %w", podCIDR, err)
	}
	config := fmt.Sprintf(`{
  "cniVersion": "0.3.1",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": %q}]]
      },
      "mtu": 1500
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, podCIDR)
	if old, err := os.ReadFile(cniConfig); err == nil && string(old) == config {
		return nil
	}
	tmp := cniConfig + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		return fmt.Errorf("writing the CNI config: %w", err)
	}
	if err := os.Rename(tmp, cniConfig); err != nil {
		return fmt.Errorf("writing the CNI config: %w", err)
	}
	log.Printf("wrote %s for pod CIDR %s", cniConfig, podCIDR)
	return nil
}
