module github.com/resync/resync

go 1.26
