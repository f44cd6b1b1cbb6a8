# ops/s per system, clustered by workload x processes. Called by bench/run:
#   gnuplot -e "datafile='chart.dat'; outfile='chart.png'; subtitle='...'" bench/chart.gp
# Log scale: memcached/Redis sit two orders of magnitude below the in-memory systems.
set terminal pngcairo size 1200,620 noenhanced font ",10"
set output outfile
set title "pipecache bench: ops/s per system (higher is better, log scale)\n".subtitle
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1000:*]
set format y "%.0s%c"
set ylabel "ops/s (total over worker processes)"
set grid ytics
set key outside right top vertical
set datafile missing "?"
set xtics nomirror
plot for [col=2:*] datafile using col:xtic(1) title columnheader(col)
