function __baton_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __baton_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __baton_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __baton_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __baton_parse_tokens -S
    set -l unparsed_tokens (__baton_tokens -pc)
    switch $unparsed_tokens[1]
    case 'baton'
        __baton_parse_subcommand 0 'h/help'
        switch $unparsed_tokens[1]
        case 'run'
            __baton_parse_subcommand -r 1 'config=' 'control=' 'listen=+' 'name=' 'workers=' 'handoff=' 'ready=' 'ready-timeout=' 'drain-signal=' 'drain-timeout=' 'max-draining=' 'kill-mode=' 'output=' 'log-level=' 'h/help'
        case 'reload'
            __baton_parse_subcommand 0 'wait' 'timeout=' 'control=' 'config=' 'h/help'
        case 'status'
            __baton_parse_subcommand 0 'json' 'control=' 'config=' 'h/help'
        case 'stop'
            __baton_parse_subcommand 0 'now' 'control=' 'config=' 'h/help'
        case 'scale'
            __baton_parse_subcommand 1 'control=' 'config=' 'h/help'
        case 'check'
            __baton_parse_subcommand -r 1 'config=' 'control=' 'listen=+' 'name=' 'workers=' 'handoff=' 'ready=' 'ready-timeout=' 'drain-signal=' 'drain-timeout=' 'max-draining=' 'kill-mode=' 'output=' 'log-level=' 'h/help'
        case 'help'
            __baton_parse_subcommand -r 1 
        end
    end
end

function __baton_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __baton_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __baton_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __baton_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__baton_tokens -p)
    if test -z "$(__baton_tokens -t)"
        set -l index (count (__baton_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'baton' -f
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'run' -d 'Run the master: bind the listeners and supervise generations of workers.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'reload' -d 'Start a new generation; the serving one drains once every new worker is ready.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'status' -d 'Show the master\'s listeners, generations and workers, and the last reload.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'stop' -d 'Stop the master: drain every generation (or kill every worker with --now), then exit.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'scale' -d 'Run N workers per generation from now on.'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'check' -d 'Validate a configuration and print a summary (exit 2 with the errors).'
complete -c 'baton' -n '__baton_should_offer_completions_for_positional "baton" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" config' -l 'config' -d 'Configuration file (TOML).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" control' -l 'control' -d 'Control socket path (default: per program, see docs/OPERATIONS.md).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run"' -l 'listen' -d 'A listener, e.g. http=tcp://127.0.0.1:8080 (repeatable).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" name' -l 'name' -d 'Program name (default: the command\'s base name).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" workers' -l 'workers' -d 'Workers per generation.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" handoff' -l 'handoff' -d 'How workers get their sockets: listen-fds or channel.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" ready' -l 'ready' -d 'Readiness: notify, exec, delay or spawn.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" ready-timeout' -l 'ready-timeout' -d 'e.g. 60s' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" drain-signal' -l 'drain-signal' -d 'e.g. SIGTERM' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" drain-timeout' -l 'drain-timeout' -d 'e.g. 30s' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" max-draining' -l 'max-draining' -d 'Generations allowed to drain at once.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" kill-mode' -l 'kill-mode' -d 'group or process.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" output' -l 'output' -d 'Worker output: forward or inherit.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning or error.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton run" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton reload" wait' -l 'wait' -d 'Wait until the new generation serves or the reload fails, printing its progress.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton reload" timeout' -l 'timeout' -d 'Stop waiting after this long (exit 4; the reload goes on), e.g. 2m.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton reload" control' -l 'control' -d 'The master\'s control socket (default: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton reload" config' -l 'config' -d 'The master\'s configuration file, to find its control socket.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton reload" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton status" json' -l 'json' -d 'Print the report as JSON (the control protocol\'s StatusReport).'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton status" control' -l 'control' -d 'The master\'s control socket (default: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton status" config' -l 'config' -d 'The master\'s configuration file, to find its control socket.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton stop" now' -l 'now' -d 'Kill every worker at once instead of draining.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton stop" control' -l 'control' -d 'The master\'s control socket (default: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton stop" config' -l 'config' -d 'The master\'s configuration file, to find its control socket.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton stop" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton scale" control' -l 'control' -d 'The master\'s control socket (default: from --config, else $BATON_CONTROL, else the only socket in the runtime directory).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton scale" config' -l 'config' -d 'The master\'s configuration file, to find its control socket.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton scale" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" config' -l 'config' -d 'Configuration file (TOML).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" control' -l 'control' -d 'Control socket path (default: per program, see docs/OPERATIONS.md).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check"' -l 'listen' -d 'A listener, e.g. http=tcp://127.0.0.1:8080 (repeatable).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" name' -l 'name' -d 'Program name (default: the command\'s base name).' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" workers' -l 'workers' -d 'Workers per generation.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" handoff' -l 'handoff' -d 'How workers get their sockets: listen-fds or channel.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" ready' -l 'ready' -d 'Readiness: notify, exec, delay or spawn.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" ready-timeout' -l 'ready-timeout' -d 'e.g. 60s' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" drain-signal' -l 'drain-signal' -d 'e.g. SIGTERM' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" drain-timeout' -l 'drain-timeout' -d 'e.g. 30s' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" max-draining' -l 'max-draining' -d 'Generations allowed to drain at once.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" kill-mode' -l 'kill-mode' -d 'group or process.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" output' -l 'output' -d 'Worker output: forward or inherit.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning or error.' -rfka ''
complete -c 'baton' -n '__baton_should_offer_completions_for_flags_or_options "baton check" h help' -s 'h' -l 'help' -d 'Show help information.'
