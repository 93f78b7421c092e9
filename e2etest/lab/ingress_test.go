package lab

import (
	"net/netip"
	"slices"
	"testing"
)

func TestResolveArgs(t *testing.T) {
	for _, c := range []struct {
		url, ip, ca string
		want        []string
	}{
		{"https://app.example/api", "198.51.100.100", "/ca.pem",
			[]string{"--resolve", "app.example:443:198.51.100.100", "--cacert", "/ca.pem", "https://app.example/api"}},
		{"http://blog.example/", "198.51.100.100", "",
			[]string{"--resolve", "blog.example:80:198.51.100.100", "http://blog.example/"}},
		{"https://app.example:8443/", "2001:db8:1::100", "",
			[]string{"--resolve", "app.example:8443:[2001:db8:1::100]", "https://app.example:8443/"}},
	} {
		if got := ResolveArgs(c.url, netip.MustParseAddr(c.ip), c.ca); !slices.Equal(got, c.want) {
			t.Errorf("ResolveArgs(%s, %s) = %q, want %q", c.url, c.ip, got, c.want)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	a, err := ParseAnswer("backend=api path=/api/items via=node2 client=198.51.100.2\n")
	if err != nil || a != (Answer{Backend: "api", Path: "/api/items", Via: "node2", Client: "198.51.100.2"}) {
		t.Errorf("got %+v, %v", a, err)
	}
	for _, bad := range []string{"", "404 page not found", "no available server"} {
		if _, err := ParseAnswer(bad); err == nil {
			t.Errorf("ParseAnswer(%q) accepted", bad)
		}
	}
}
