/* SPDX-License-Identifier: Apache-2.0 */
/* cox subcommands: each takes the arguments after its name (argv[0] is the name). */
#ifndef PHAROS_COX_H
#define PHAROS_COX_H

/* Exit codes shared by every subcommand (BRIEF.md §4). */
enum { COX_OK = 0, COX_FAIL = 1, COX_USAGE = 2 };

int	cmd_validate(int argc, char **argv);
int	cmd_init(int argc, char **argv);
int	cmd_nodes(int argc, char **argv);
int	cmd_audit(int argc, char **argv);
int	cmd_ssh_key(int argc, char **argv);
int	cmd_run(int argc, char **argv);
int	cmd_status(int argc, char **argv);
int	cmd_plan(int argc, char **argv);
int	cmd_admin(int argc, char **argv);
int	cmd_tokens(int argc, char **argv);

#endif
