// Package agreement holds only a test: it sends objects to a real API server (with
// Portico's CRDs installed, from internal/testcluster) and checks that crdschema
// accepts and refuses exactly what the API server does, on the same fields. It is
// a package of its own so that crdschema's unit tests run without an API server.
package agreement
