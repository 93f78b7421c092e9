package main

func demo(name string, nodes int) error { return nil }

func bench(name string, nodes, trials, services int) error { return nil }
