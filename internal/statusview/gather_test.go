package statusview

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// TestGatherAnswers drives Gather against a stand-in API server that answers
// each list with the status given for its path, or an empty list.
func TestGatherAnswers(t *testing.T) {
	cases := []struct {
		name    string
		status  map[string]int // path suffix -> HTTP status
		fatal   string         // wanted UnreachableError text
		warning string         // wanted warning
	}{
		{name: "all readable"},
		{name: "events forbidden", status: map[string]int{"/events": http.StatusForbidden}, warning: "could not list events: events is forbidden"},
		{name: "Portico not installed", status: map[string]int{"/ipaddresspools": http.StatusNotFound},
			fatal: "Portico is not installed on the cluster at URL: the resource ipaddresspools.portico.dev does not exist"},
		{name: "credentials refused", status: map[string]int{"/services": http.StatusUnauthorized}, fatal: "the API server at URL refused the credentials (401 Unauthorized)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for suffix, code := range tc.status {
					if strings.HasSuffix(r.URL.Path, suffix) {
						w.WriteHeader(code)
						reason := map[int]string{403: "Forbidden", 404: "NotFound", 401: "Unauthorized"}[code]
						name := suffix[1:]
						fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d,"message":"%s is forbidden"}`, reason, code, name)
						return
					}
				}
				fmt.Fprint(w, `{"kind":"List","apiVersion":"v1","metadata":{},"items":[]}`)
			}))
			defer srv.Close()
			r, err := Gather(context.Background(), &rest.Config{Host: srv.URL, Timeout: time.Second})
			var ue *UnreachableError
			switch {
			case tc.fatal != "":
				want := strings.ReplaceAll(tc.fatal, "URL", srv.URL)
				if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("error %v, want %q", err, want)
				}
			case err != nil:
				t.Fatal(err)
			case tc.warning != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.warning)):
				t.Errorf("warnings %q, want %q", r.Warnings, tc.warning)
			case tc.warning == "" && len(r.Warnings) != 0:
				t.Errorf("warnings %q", r.Warnings)
			}
		})
	}
}
