/*
 * main.c - kilnctl, the admin command: parse the command line and hand
 * over to the command's module (ctl_migrate.c, ctl_user.c). Nothing else
 * lives here.
 *
 * Global options come before the command (getopt stops at the first
 * non-option, so passwords that start with '-' reach the command intact).
 * Exit codes: 0 done, 1 operational error, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl_ctx.h"
#include "ctl_group.h"
#include "ctl_migrate.h"
#include "ctl_admin.h"
#include "ctl_room.h"
#include "ctl_user.h"

static void ctl_usage(FILE *f)
{
    fputs("usage: kilnctl [-c FILE] [--check-config] COMMAND ...\n"
          "\n"
          "options:\n"
          "  -c, --config FILE   config file (default: $KILN_CONF, "
          "else " CTL_DEFAULT_CONF ")\n"
          "  --check-config      load the config, print \"config ok\" or "
          "the error\n"
          "  -h, --help          this text\n"
          "\n"
          "commands:\n"
          "  db migrate [--dir SQLDIR]   apply pending sql/NNNN_*.sql "
          "migrations\n"
          "                              (SQLDIR: $KILN_SQL_DIR, else "
          "<kilnctl's dir>/../share/kiln/sql,\n"
          "                              else " CTL_SQL_DIR_INSTALLED ",\n"
          "                              else " CTL_SQL_DIR_LOCAL ")\n"
          "  user add USER [PASSWORD]    create a user (no PASSWORD or '-': "
          "read stdin)\n"
          "  user passwd USER [PASSWORD] set a new password\n"
          "  user del USER               delete a user\n"
          "  user list                   list users\n"
          "  user disable USER           refuse logins (account-disabled), "
          "end sessions\n"
          "  user enable USER            accept logins again\n"
          "  session list [USER]         online sessions (Redis): JID, node, "
          "priority\n"
          "  session kick JID            end a session (bare JID: all)\n"
          "  stats                       nodes, liveness, sessions per node\n"
          "  announce TEXT               headline message to every online "
          "session\n"
          "  group add NAME [--display TEXT] [--visibility V]\n"
          "                              shared roster group (V: nobody,\n"
          "                              everybody, only_group)\n"
          "  group del NAME | group list | group member add|del NAME USER\n"
          "  group-room create ROOM [--name NAME] [--owner JID]\n"
          "  group-room add-member ROOM JID [--nick NICK]\n"
          "  group-room remove-member ROOM JID\n"
          "  group-room list [ROOM]      groups, or a group's affiliations\n"
          "\n"
          "USER is a local part or a bare JID of the configured domain.\n"
          "exit status: 0 ok, 1 error, 2 usage error\n",
          f);
}

static int ctl_bad_usage(const char *why)
{
    fprintf(stderr, "kilnctl: %s (see kilnctl --help)\n", why);
    return CTL_EXIT_USAGE;
}

static int ctl_cmd_db(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *dir = NULL;

    if (argc < 1 || strcmp(argv[0], "migrate") != 0)
        return ctl_bad_usage("db: expected `db migrate`");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--dir=", 6) == 0)
            dir = argv[i] + 6;
        else
            return ctl_bad_usage("db migrate: unexpected argument");
    }
    return ctl_db_migrate(ctx, dir);
}

static int ctl_cmd_user(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";

    if (strcmp(sub, "add") == 0 && (argc == 2 || argc == 3))
        return ctl_user_add(ctx, argv[1], argc == 3 ? argv[2] : NULL);
    if (strcmp(sub, "passwd") == 0 && (argc == 2 || argc == 3))
        return ctl_user_passwd(ctx, argv[1], argc == 3 ? argv[2] : NULL);
    if (strcmp(sub, "del") == 0 && argc == 2)
        return ctl_user_del(ctx, argv[1]);
    if (strcmp(sub, "list") == 0 && argc == 1)
        return ctl_user_list(ctx);
    if (strcmp(sub, "disable") == 0 && argc == 2)
        return ctl_user_set_disabled(ctx, argv[1], true);
    if (strcmp(sub, "enable") == 0 && argc == 2)
        return ctl_user_set_disabled(ctx, argv[1], false);
    return ctl_bad_usage("user: expected add USER [PASSWORD], passwd USER "
                         "[PASSWORD], del USER or list");
}

/* `group-room SUB ARGS [--name N] [--owner J] [--nick N]` (ctl_room.c). */
static int ctl_cmd_room(ctl_ctx_t *ctx, int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *name = NULL, *owner = NULL,
               *nick = NULL;
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc)
            owner = argv[++i];
        else if (strcmp(argv[i], "--nick") == 0 && i + 1 < argc)
            nick = argv[++i];
        else if (npos < 3)
            pos[npos++] = argv[i];
        else
            return ctl_bad_usage("group-room: too many arguments");
    }
    const char *sub = npos > 0 ? pos[0] : "";
    if (strcmp(sub, "create") == 0 && npos == 2)
        return ctl_room_create(ctx, pos[1], name, owner);
    if (strcmp(sub, "add-member") == 0 && npos == 3)
        return ctl_room_add_member(ctx, pos[1], pos[2], nick);
    if (strcmp(sub, "remove-member") == 0 && npos == 3)
        return ctl_room_remove_member(ctx, pos[1], pos[2]);
    if (strcmp(sub, "list") == 0 && npos <= 2)
        return ctl_room_list(ctx, npos == 2 ? pos[1] : NULL);
    return ctl_bad_usage("group-room: expected create ROOM, add-member ROOM "
                         "JID, remove-member ROOM JID or list [ROOM]");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL;
    int check = 0, c, rc;
    ctl_ctx_t ctx;

    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            conf = optarg;
            break;
        case 'C':
            check = 1;
            break;
        case 'h':
            ctl_usage(stdout);
            return CTL_EXIT_OK;
        default:
            fputs("see kilnctl --help\n", stderr);
            return CTL_EXIT_USAGE;
        }
    }
    ctl_ctx_init(&ctx, conf);
    if (check) {
        if (optind < argc)
            return ctl_bad_usage("--check-config takes no command");
        rc = ctl_check_config(&ctx);
    } else if (optind >= argc) {
        return ctl_bad_usage("no command");
    } else if (strcmp(argv[optind], "db") == 0) {
        rc = ctl_cmd_db(&ctx, argc - optind - 1, argv + optind + 1);
    } else if (strcmp(argv[optind], "user") == 0) {
        rc = ctl_cmd_user(&ctx, argc - optind - 1, argv + optind + 1);
    } else if (strcmp(argv[optind], "group-room") == 0) {
        rc = ctl_cmd_room(&ctx, argc - optind - 1, argv + optind + 1);
    } else if (strcmp(argv[optind], "group") == 0) {
        rc = ctl_cmd_group(&ctx, argc - optind - 1, argv + optind + 1);
    } else if (strcmp(argv[optind], "session") == 0) {
        int n = argc - optind - 1;
        char **v = argv + optind + 1;
        if (n >= 1 && strcmp(v[0], "list") == 0 && n <= 2)
            rc = ctl_session_list(&ctx, n == 2 ? v[1] : NULL);
        else if (n == 2 && strcmp(v[0], "kick") == 0)
            rc = ctl_session_kick(&ctx, v[1]);
        else
            return ctl_bad_usage("session: expected list [USER] or kick JID");
    } else if (strcmp(argv[optind], "stats") == 0 && optind + 1 == argc) {
        rc = ctl_stats(&ctx);
    } else if (strcmp(argv[optind], "announce") == 0 && optind + 2 == argc) {
        rc = ctl_announce(&ctx, argv[optind + 1]);
    } else if (strcmp(argv[optind], "help") == 0) {
        ctl_usage(stdout);
        rc = CTL_EXIT_OK;
    } else {
        return ctl_bad_usage("unknown command");
    }
    ctl_ctx_free(&ctx);
    return rc;
}
