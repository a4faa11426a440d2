#compdef baton

__baton_complete() {
    local -ar non_empty_completions=("${@:#(|:*)}")
    local -ar empty_completions=("${(M)@:#(|:*)}")
    _describe -V '' non_empty_completions -- empty_completions -P $'\'\''
}

__baton_custom_complete() {
    local -a completions
    completions=("${(@f)"$("${command_name}" "${@}" "${command_line[@]}")"}")
    if [[ "${#completions[@]}" -gt 1 ]]; then
        __baton_complete "${completions[@]:0:-1}"
    fi
}

__baton_cursor_index_in_current_word() {
    if [[ -z "${QIPREFIX}${IPREFIX}${PREFIX}" ]]; then
        printf 0
    else
        printf %s "${#${(z)LBUFFER}[-1]}"
    fi
}

_baton() {
    emulate -RL zsh -G
    setopt extendedglob nullglob numericglobsort
    unsetopt aliases banghist

    local -xr SAP_SHELL=zsh
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(builtin emulate zsh -c 'printf %s "${ZSH_VERSION}"')"
    local -r SAP_SHELL_VERSION

    local context state state_descr line
    local -A opt_args

    local -r command_name="${words[1]}"
    local -ar command_line=("${words[@]}")
    local -ir current_word_index="$((CURRENT - 1))"

    local -i ret=1
    local -ar arg_specs=(
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'run:Run the master: bind the listeners and supervise generations of workers.'
            'reload:Start a new generation; the serving one drains once every new worker is ready.'
            'status:Show the master'\''s listeners, generations and workers, and the last reload.'
            'stop:Stop the master: drain every generation (or kill every worker with --now), then exit.'
            'scale:Run N workers per generation from now on.'
            'check:Validate a configuration and print a summary (exit 2 with the errors).'
            'help:Show subcommand help information.'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        run|reload|status|stop|scale|check|help)
            "_baton_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_baton_run() {
    local -i ret=1
    local -ar arg_specs=(
        '--config[Configuration file (TOML).]:file:'
        '--control[Control socket path (default\: per program, see docs/OPERATIONS.md).]:path:'
        '*--listen[A listener, e.g. http=tcp\://127.0.0.1\:8080 (repeatable).]:name=address:'
        '--name[Program name (default\: the command'\''s base name).]:name:'
        '--workers[Workers per generation.]:workers:'
        '--handoff[How workers get their sockets\: listen-fds or channel.]:handoff:'
        '--ready[Readiness\: notify, exec, delay or spawn.]:ready:'
        '--ready-timeout[e.g. 60s]:duration:'
        '--drain-signal[e.g. SIGTERM]:signal:'
        '--drain-timeout[e.g. 30s]:duration:'
        '--max-draining[Generations allowed to drain at once.]:max-draining:'
        '--kill-mode[group or process.]:kill-mode:'
        '--output[Worker output\: forward or inherit.]:output:'
        '--log-level[trace, debug, info, notice, warning or error.]:log-level:'
        '*:command:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_reload() {
    local -i ret=1
    local -ar arg_specs=(
        '--wait[Wait until the new generation serves or the reload fails, printing its progress.]'
        '--timeout[Stop waiting after this long (exit 4; the reload goes on), e.g. 2m.]:duration:'
        '--control[The master'\''s control socket (default\: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).]:path:'
        '--config[The master'\''s configuration file, to find its control socket.]:file:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_status() {
    local -i ret=1
    local -ar arg_specs=(
        '--json[Print the report as JSON (the control protocol'\''s StatusReport).]'
        '--control[The master'\''s control socket (default\: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).]:path:'
        '--config[The master'\''s configuration file, to find its control socket.]:file:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_stop() {
    local -i ret=1
    local -ar arg_specs=(
        '--now[Kill every worker at once instead of draining.]'
        '--control[The master'\''s control socket (default\: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).]:path:'
        '--config[The master'\''s configuration file, to find its control socket.]:file:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_scale() {
    local -i ret=1
    local -ar arg_specs=(
        ':workers:'
        '--control[The master'\''s control socket (default\: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).]:path:'
        '--config[The master'\''s configuration file, to find its control socket.]:file:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_check() {
    local -i ret=1
    local -ar arg_specs=(
        '--config[Configuration file (TOML).]:file:'
        '--control[Control socket path (default\: per program, see docs/OPERATIONS.md).]:path:'
        '*--listen[A listener, e.g. http=tcp\://127.0.0.1\:8080 (repeatable).]:name=address:'
        '--name[Program name (default\: the command'\''s base name).]:name:'
        '--workers[Workers per generation.]:workers:'
        '--handoff[How workers get their sockets\: listen-fds or channel.]:handoff:'
        '--ready[Readiness\: notify, exec, delay or spawn.]:ready:'
        '--ready-timeout[e.g. 60s]:duration:'
        '--drain-signal[e.g. SIGTERM]:signal:'
        '--drain-timeout[e.g. 30s]:duration:'
        '--max-draining[Generations allowed to drain at once.]:max-draining:'
        '--kill-mode[group or process.]:kill-mode:'
        '--output[Worker output\: forward or inherit.]:output:'
        '--log-level[trace, debug, info, notice, warning or error.]:log-level:'
        '*:command:'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_baton_help() {
    local -i ret=1
    local -ar arg_specs=(
        '*:subcommands:'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

if [[ "${funcstack[1]}" = _baton ]]; then
    _baton "${@}"
else
    compdef _baton baton
fi
