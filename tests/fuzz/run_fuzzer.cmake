# Runs the parser fuzzer for a bounded time on a scratch copy of the seed corpus.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(COPY ${SEEDS}/ DESTINATION ${WORK})
execute_process(COMMAND ${FUZZER} ${WORK} -max_total_time=30 -max_len=4096 -timeout=5 -rss_limit_mb=2048
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_parsers found a crash (exit ${rc}); see the log above")
endif()
