# SPDX-License-Identifier: Apache-2.0
# Shared by the bench scripts (sourced): figures in a column on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# A 95 % interval for the median of a column: the order statistics around n/2 +- 0.98 sqrt(n).
interval() { # FORMAT
	sort -g | awk -v f="$1" '{a[NR]=$1} END {d = int(0.98 * sqrt(NR) + 0.5); lo = int((NR + 1) / 2) - d;
	    hi = int(NR / 2) + 1 + d; if (lo < 1) lo = 1; if (hi > NR) hi = NR; printf f "-" f, a[lo], a[hi]}'
}
