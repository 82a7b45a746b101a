trigger SextantAccountTrigger on Account(after insert, after update) {
    SextantAccountTriggerHandler.run(Trigger.operationType, Trigger.new, Trigger.oldMap);
}
